"""The audit scope of a Celery task: entries a task writes say they came from a task and
carry the task id as their correlation id. Context only: who acted is always the actor the
task passes to the service it calls."""

from celery.signals import task_postrun, task_prerun

from copilot_admin.core.context import Channel, scope_enter, scope_exit

_scopes: dict[str, object] = {}


@task_prerun.connect(dispatch_uid="audit_task_scope_enter")
def _enter_task_scope(task_id=None, **_):
    # Its own unit of work, also when run eagerly inside a request: no tenant or client
    # address of the request carries over.
    _scopes[task_id] = scope_enter(channel=Channel.TASK, correlation_id=(task_id or "")[:64], tenant=None,
                                   remote_addr="")


@task_postrun.connect(dispatch_uid="audit_task_scope_exit")
def _exit_task_scope(task_id=None, **_):
    scope_exit(_scopes.pop(task_id, None))
