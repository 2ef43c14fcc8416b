"""Integration tests of the HubSpot emulator (sandbox/hubspot) with the real SDK."""
