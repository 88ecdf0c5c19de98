"""Stripe, SendGrid and EasyPost behind typed ports (``ports``), their failure
classification (``errors``) and in-call retries (``retry``), webhook verification
(``webhooks``), and ``sandbox``: local servers that speak the same wire protocols.

Nothing here is built at import time; each gateway has a ``build_*(settings)`` factory.
"""
