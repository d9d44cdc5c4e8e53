"""Call-log analysis: KPI definitions as pure functions over call records, hourly and
daily rollup tables updated at call end, the internal call matrix, and the queries behind
dashboards and reports.
"""
