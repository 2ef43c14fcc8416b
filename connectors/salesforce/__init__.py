"""The Salesforce adapter of the CRM port (simple-salesforce over the REST API)."""

from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector"]
