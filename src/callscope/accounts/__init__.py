"""Who may use callscope and what they did: users and roles (the manager, 管理責任者, and
the operators, 管理補助者, they designate), designation and training records,
authentication policy (passwords, lockout, second factor, idle lock), and the
hash-chained audit trail.
"""
