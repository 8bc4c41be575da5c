"""Use cases shared by the API, the CLI and the jobs. Each takes keyword-only arguments
(``*, session, actor, ...``), owns its transaction and raises ``adbot.errors`` classes.
"""
