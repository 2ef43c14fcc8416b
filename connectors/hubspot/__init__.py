"""The HubSpot adapter of the CRM port (see `connectors.hubspot.connector`)."""

from connectors.hubspot.connector import HubSpotConnector

__all__ = ["HubSpotConnector"]
