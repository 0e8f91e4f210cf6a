"""The accounting service: prices, a double-entry ledger, daily payouts and their mails."""
