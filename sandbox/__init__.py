"""Local stand-ins for Stripe, SendGrid and EasyPost that the official SDKs talk to
unmodified: one aiohttp app on one port, its records kept in a SQLite file under
``VAR_DIR`` across restarts, seeded fault injection, and signed webhooks back to the
API (DESIGN.md, "Sandbox")."""

from sandbox.app import create_sandbox_app, serve, start_sandbox
from sandbox.config import PROVIDERS, ProviderFaults, SandboxConfig
from sandbox.server import SandboxThread

__all__ = [
    "PROVIDERS",
    "ProviderFaults",
    "SandboxConfig",
    "SandboxThread",
    "create_sandbox_app",
    "serve",
    "start_sandbox",
]
