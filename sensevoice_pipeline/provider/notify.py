"""Where alerts go: Airflow's own notifiers (the SMTP provider's ``SmtpNotifier``, the HTTP provider's
``HttpNotifier``), each aimed by a Connection. A channel whose Connection does not exist is skipped (and said so in
the task log): a deployment sets up the channels it wants, nothing else.

- ``sensevoice_alerts_smtp`` (``$SVP_ALERT_SMTP_CONN_ID``): an SMTP Connection (host, port, login; extras as the SMTP
  provider reads them: ``from_email``, ``disable_ssl``, ``disable_tls``) whose extra ``to`` lists the recipients
  (comma-separated);
- ``sensevoice_alerts_webhook`` (``$SVP_ALERT_WEBHOOK_CONN_ID``): an HTTP Connection (its host/schema/port are the
  URL; login, password or headers in its extra as the HTTP provider reads them) that receives a JSON POST:
  ``{"kind", "subject", "text", "date", "details"}``.

Both notifiers render their fields as Jinja templates; the texts here are data (a queue name comes from a manifest),
so their braces are neutralised first.
"""

from __future__ import annotations

import html
import logging
import os

from sensevoice_pipeline.provider.hooks import optional_connection

log = logging.getLogger(__name__)

SMTP_CONN_ID = "sensevoice_alerts_smtp"
WEBHOOK_CONN_ID = "sensevoice_alerts_webhook"
DEFAULT_FROM = "sensevoice-alerts@localhost"


def smtp_conn_id() -> str:
    return os.environ.get("SVP_ALERT_SMTP_CONN_ID") or SMTP_CONN_ID


def webhook_conn_id() -> str:
    return os.environ.get("SVP_ALERT_WEBHOOK_CONN_ID") or WEBHOOK_CONN_ID


def _inert(value):
    """``value`` with no Jinja left in it: every string's braces replaced (recursively in lists and dicts)."""
    if isinstance(value, str):
        return value.replace("{", "(").replace("}", ")")
    if isinstance(value, dict):
        return {k: _inert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inert(v) for v in value]
    return value


def send_alert(context, kind: str, subject: str, text: str, date: str, details) -> list[str]:
    """Notify every configured channel; returns the channels that were sent to ("smtp", "webhook")."""
    subject, text, details = _inert(subject), _inert(text), _inert(details)
    sent = []
    smtp = optional_connection(smtp_conn_id())
    if smtp is not None:
        _email(context, smtp, subject, text)
        sent.append("smtp")
    if optional_connection(webhook_conn_id()) is not None:
        _webhook(context, {"kind": kind, "subject": subject, "text": text, "date": date, "details": details})
        sent.append("webhook")
    if sent:
        log.info("alert sent (%s): %s", ", ".join(sent), subject)
    else:
        log.warning(
            "alert not sent: neither Connection %s nor %s exists: %s",
            smtp_conn_id(),
            webhook_conn_id(),
            subject,
        )
    return sent


def _email(context, conn, subject: str, text: str) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    extra = conn.extra_dejson
    to = [a.strip() for a in str(extra.get("to") or "").split(",") if a.strip()]
    if not to:
        raise ValueError(f"the SMTP Connection {conn.conn_id} has no recipients: set its extra 'to'")
    body = f"<pre>{html.escape(text)}</pre>"
    notifier = SmtpNotifier(
        to=to,
        from_email=extra.get("from_email") or DEFAULT_FROM,
        subject=subject,
        html_content=body,
        smtp_conn_id=conn.conn_id,
    )
    notifier(context)


def _webhook(context, payload: dict) -> None:
    from airflow.providers.http.notifications.http import HttpNotifier

    notifier = HttpNotifier(
        http_conn_id=webhook_conn_id(), json=payload, headers={"Content-Type": "application/json"}
    )
    notifier(context)


def partition_late(context) -> None:
    """``on_failure_callback`` of the partition sensor: a day whose audio did not arrive in time is told, once (the
    sensor's timeout is not retried); any other failure of the sensor is the task's own business."""
    from airflow.sdk.exceptions import AirflowSensorTimeout

    error = context.get("exception")
    if not isinstance(error, AirflowSensorTimeout):
        return
    from sensevoice_pipeline.provider.sensors import partition_date

    ti = context.get("ti")
    date = partition_date(context)
    subject = f"SenseVoice {date}: the day's audio did not arrive"
    text = f"{error}\n\nDAG {getattr(ti, 'dag_id', '?')}, run {context.get('run_id')}: nothing was published."
    send_alert(context, "partition_late", subject, text, date, {"reason": str(error)})
