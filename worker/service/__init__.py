"""The service runtime: wiring (config to a running service), the scheduler, the health server
and configuration reload."""
