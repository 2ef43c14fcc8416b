"""The cadence engine: pure code from (deal, rules, calendar, now) to planned tasks. No I/O."""
