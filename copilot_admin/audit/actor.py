"""Who acted, for changes made by Celery tasks.

A task enqueued on behalf of a user passes `actor_id=<user id>` in its kwargs; the task then
runs with that user as django-auditlog actor. A task without `actor_id` acts as the system
(actor empty, `additional_data.actor` = "system" where the model adds it). Every audit entry
a task writes says it came from a task and carries the task id as its correlation id.
"""

from auditlog.context import set_actor
from celery.signals import task_postrun, task_prerun
from django.contrib.auth import get_user_model

from copilot_admin.core.context import Channel, scope_enter, scope_exit

_contexts: dict[str, tuple[object, object]] = {}


@task_prerun.connect
def _enter_task_actor(task_id=None, task=None, kwargs=None, **_):
    actor_id = (kwargs or {}).get("actor_id")
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    context = set_actor(actor=actor, remote_addr=None)
    context.__enter__()
    scope_token = scope_enter(channel=Channel.TASK, correlation_id=(task_id or "")[:64], tenant=None)
    _contexts[task_id] = (context, scope_token)


@task_postrun.connect
def _exit_task_actor(task_id=None, **_):
    context, scope_token = _contexts.pop(task_id, (None, None))
    scope_exit(scope_token)
    if context is not None:
        context.__exit__(None, None, None)
