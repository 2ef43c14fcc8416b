"""One tick of one connection: pull, plan, store, write (orchestration over the ledger)."""
