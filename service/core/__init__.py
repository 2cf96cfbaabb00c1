"""Settings, database engine, security and storage helpers of the service."""
