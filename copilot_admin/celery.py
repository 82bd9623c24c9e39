"""The Celery application. Without CELERY_BROKER_URL tasks run in-process (eager)."""

import os

from celery import Celery, Task
from celery.signals import worker_process_init
from django.utils import timezone

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_admin.settings")


class UtcTask(Task):
    """Every task runs in UTC, whoever enqueued it: also when run eagerly inside a page
    request that showed a user's own zone (UserTimeZoneMiddleware), the e-mails, webhooks and
    rows a task writes say UTC. The request's zone is back when the task returns."""

    def __call__(self, *args, **kwargs):
        with timezone.override(None):
            return super().__call__(*args, **kwargs)


app = Celery("copilot_admin", task_cls=UtcTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _tune_child(**kwargs):
    """A worker child starts with everything loaded: freeze it out of garbage collection."""
    from copilot_admin.core.runtime import gc_tune

    gc_tune()
