"""``@lineage_task``: Airflow's ``@task`` whose body reports the datasets it reads and writes, for the OpenLineage
provider (``apache-airflow-providers-openlineage``) to put in the task's COMPLETE (and FAIL) event.

The provider asks an operator for its lineage through ``get_openlineage_facets_on_complete`` (its
``DefaultExtractor``); a plain ``@task`` has no such method, and its static ``inlets``/``outlets`` cannot name
datasets that depend on the run (the ``lake_root`` Param) nor carry their schemas. So the body builds them
(``provider.lineage``) and hands them over with :func:`report_lineage`; the operator keeps them until the provider
asks, in the same task process (the listener runs after ``execute``, in a fork or a thread of it). With
OpenLineage disabled (no transport configured) nothing is emitted and the call costs nothing more.

    @lineage_task(trigger_rule="none_failed")
    def publish():
        context = get_current_context()
        report_lineage(context, lambda: lineage.daily_publish_lineage(settings, date))
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import TaskDecorator, task_decorator_factory

__all__ = ["lineage_task", "report_lineage"]

log = logging.getLogger(__name__)


class LineageReportingOperator(_PythonDecoratedOperator):
    """``@task``'s own operator (the standard provider's), plus the OpenLineage methods that return what the body
    reported with :func:`report_lineage` (nothing, if it reported nothing: then the provider falls back to the
    task's ``inlets``/``outlets``)."""

    _reported_lineage: OperatorLineage | None = None

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage | None:
        return self._reported_lineage

    def get_openlineage_facets_on_failure(self, task_instance) -> OperatorLineage | None:
        # The body reports before it writes: a task that failed after writing (a day published over its failure
        # budget) still names what it wrote.
        return self._reported_lineage


def lineage_task(python_callable: Callable | None = None, **kwargs) -> TaskDecorator:
    """``@task`` (same arguments) whose body may call :func:`report_lineage`."""
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=LineageReportingOperator, **kwargs
    )


def report_lineage(context, build: Callable[[], tuple[Sequence, Sequence]]) -> None:
    """Record the OpenLineage inputs and outputs (``openlineage.client.event_v2`` datasets) that ``build()`` returns
    for the running ``@lineage_task`` (``context`` = its ``get_current_context()``), for its COMPLETE or FAIL
    event. Lineage never fails the task: an error building it is logged, and the event names no datasets."""
    task = context["task"]
    if not isinstance(task, LineageReportingOperator):
        raise TypeError(f"task {task.task_id!r} reports lineage but is not a @lineage_task")
    try:
        inputs, outputs = build()
    except Exception:
        log.warning("could not build the OpenLineage datasets of task %r", task.task_id, exc_info=True)
        return
    task._reported_lineage = OperatorLineage(inputs=list(inputs), outputs=list(outputs))
