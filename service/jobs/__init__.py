"""The job lifecycle: states (`states`) and the transitions routes and workers call (`lifecycle`).

One module owns the job state machine; the routes speak HTTP and the workers drive jobs, both
through `service.jobs.lifecycle`. Only the states are re-exported here (`service.models` imports
them, and `lifecycle` imports the models).
"""

from service.jobs.states import ACTIVE_STATES, TERMINAL_STATES, JobState

__all__ = ["ACTIVE_STATES", "TERMINAL_STATES", "JobState"]
