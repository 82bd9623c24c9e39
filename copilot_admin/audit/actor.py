"""Who acted, for changes made by Celery tasks.

A task enqueued on behalf of a user passes `actor_id=<user id>` in its kwargs; the task then
runs with that user as django-auditlog actor. A task without `actor_id` acts as the system
(actor empty, `additional_data.actor` = "system" where the model adds it).
"""

from auditlog.context import set_actor
from celery.signals import task_postrun, task_prerun
from django.contrib.auth import get_user_model

_contexts: dict[str, object] = {}


@task_prerun.connect
def _enter_task_actor(task_id=None, task=None, kwargs=None, **_):
    actor_id = (kwargs or {}).get("actor_id")
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    context = set_actor(actor=actor, remote_addr=None)
    context.__enter__()
    _contexts[task_id] = context


@task_postrun.connect
def _exit_task_actor(task_id=None, **_):
    context = _contexts.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)
