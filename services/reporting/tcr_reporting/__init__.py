"""Reporting service: county assessment metrics (clause 七), the annual report (clause 十六) and a dashboard,
projected incrementally from the registry's and the subsidy service's public feeds."""
