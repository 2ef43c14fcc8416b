"""A protocol-faithful Salesforce REST API emulator (HTTPS on 127.0.0.1) for simple-salesforce.

`start_salesforce()` serves a fresh `SalesforceEmulator` with a throw-away CA; point
simple-salesforce at it as shown in reference §6 and drive scenarios through /__sandbox/.
"""

from sandbox.salesforce.emulator import SalesforceEmulator, SalesforceOptions, start_salesforce

__all__ = ["SalesforceEmulator", "SalesforceOptions", "start_salesforce"]
