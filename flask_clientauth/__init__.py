"""Flask-ClientAuth: API Connect-style client ID / client secret enforcement from an OpenAPI document."""

from __future__ import annotations

from .context import AuthenticatedClient, client_key, current_client, get_current_client
from .errors import AuthFailure, ClientAuthError
from .extension import ClientAuth, ClientAuthState
from .requirements import Policy, Requirement, Scheme
from .service import ClientPage, ClientService, Created, ServiceError
from .settings import ConfigurationError
from .spec import Spec, SpecError, load_spec
from .store import (
    AuditRecord,
    ClientNotFound,
    ClientRecord,
    ClientStore,
    CredentialRecord,
    DuplicateClientId,
    LastCredential,
    StoreBusy,
    StoreError,
    TooManyCredentials,
)
from .throttle import ThrottleUnavailable

__all__ = [
    "AuditRecord",
    "AuthFailure",
    "AuthenticatedClient",
    "ClientAuth",
    "ClientAuthError",
    "ClientAuthState",
    "ClientNotFound",
    "ClientPage",
    "ClientRecord",
    "ClientService",
    "ClientStore",
    "ConfigurationError",
    "Created",
    "CredentialRecord",
    "DuplicateClientId",
    "LastCredential",
    "Policy",
    "Requirement",
    "Scheme",
    "ServiceError",
    "Spec",
    "SpecError",
    "StoreBusy",
    "StoreError",
    "ThrottleUnavailable",
    "TooManyCredentials",
    "client_key",
    "current_client",
    "get_current_client",
    "load_spec",
]

__version__ = "0.1.0"
