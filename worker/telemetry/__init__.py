"""Logs and Prometheus metrics, shared by the sync stages and the service runtime."""
