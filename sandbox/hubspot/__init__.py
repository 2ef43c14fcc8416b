"""A protocol-faithful HubSpot CRM API emulator (see `/__sandbox/` admin routes in admin.py).

`start_hubspot()` serves one on 127.0.0.1 over plain HTTP; the unmodified `hubspot-api-client`
works against it with `HubSpot(access_token=SANDBOX_TOKEN, host=server.url)` (strict, like
HubSpot: other static tokens must be registered, `tokens=[...]` or
`POST /__sandbox/tokens/register`).
"""

from sandbox.hubspot.emulator import HubSpotEmulator, HubSpotOptions, start_hubspot

__all__ = ["HubSpotEmulator", "HubSpotOptions", "start_hubspot"]
