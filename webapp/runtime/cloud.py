"""What Google Cloud tells this process about itself, for its logs: the project and the service.

Cloud Run, Cloud Functions and Vertex AI set K_SERVICE or AIP_MODE but not
GOOGLE_CLOUD_PROJECT, which the trace field of every log line needs. There the project id is
asked of the metadata server once, at start (never on a request's path), with a short timeout;
a failure is logged once and the logs go without the trace field. Standard library only.
"""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Mapping

from .logs import DEFAULT_SERVICE, configure_logging

log = logging.getLogger(__name__)

METADATA_HOST = "metadata.google.internal"  # GCE_METADATA_HOST overrides it, as in google-auth
PROJECT_ID_PATH = "/computeMetadata/v1/project/project-id"
# Well under a second: on Google Cloud the server answers in milliseconds, and elsewhere the
# start must not wait for it.
TIMEOUT = 0.5
# Project ids, domain-scoped ones ("example.com:project") included; nothing else is logged.
_PROJECT_ID = re.compile(r"[a-z][a-z0-9.:-]{0,99}")


def on_google_cloud(environ: Mapping[str, str]) -> bool:
    """Whether a Google Cloud serverless platform runs this process: Cloud Run and Cloud
    Functions set K_SERVICE, Vertex AI's prediction containers AIP_MODE."""
    return bool(environ.get("K_SERVICE") or environ.get("AIP_MODE"))


def metadata_project_id(environ: Mapping[str, str]) -> str:
    """Ask the metadata server for the project id; OSError or ValueError if it cannot say."""
    host = environ.get("GCE_METADATA_HOST") or METADATA_HOST
    connection = http.client.HTTPConnection(host, timeout=TIMEOUT)
    try:
        connection.request("GET", PROJECT_ID_PATH, headers={"Metadata-Flavor": "Google"})
        response = connection.getresponse()
        body = response.read(256)
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"{host} answered {response.status}")
    if response.getheader("Metadata-Flavor") != "Google":
        raise ValueError(f"{host} is not a metadata server (no Metadata-Flavor: Google)")
    project = body.decode("ascii", "replace").strip()
    if not _PROJECT_ID.fullmatch(project):
        raise ValueError(f"{host} answered something other than a project id")
    return project


def project_id(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """GOOGLE_CLOUD_PROJECT, else on Google Cloud the metadata server's answer; and, when
    there is none on Google Cloud, why."""
    if environ.get("GOOGLE_CLOUD_PROJECT"):
        return environ["GOOGLE_CLOUD_PROJECT"], None
    if not on_google_cloud(environ):
        return None, None
    try:
        return metadata_project_id(environ), None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def service_context(environ: Mapping[str, str]) -> dict[str, str]:
    """Error Reporting's serviceContext: the Cloud Run service or function, and its revision."""
    service = (
        environ.get("K_SERVICE")
        or environ.get("FUNCTION_NAME")
        or environ.get("FUNCTION_TARGET")
        or DEFAULT_SERVICE
    )
    revision = environ.get("K_REVISION")
    return {"service": service, "version": revision} if revision else {"service": service}


def setup_logging(environ: Mapping[str, str]) -> None:
    """JSON logs at LOG_LEVEL, with the project (asked for here if need be) and the service."""
    project, problem = project_id(environ)
    configure_logging(environ.get("LOG_LEVEL", "INFO"), project, service_context(environ))
    if problem:
        log.warning("no project id from the metadata server, so no trace field: %s", problem)
