"""Optional integrations with third-party systems, one module each.

Nothing here is imported by ``import zeroflow``: each module needs its extra
(``zeroflow[postgres]`` for ``zeroflow.contrib.postgres``, ``zeroflow[celery]``
for ``zeroflow.contrib.celery``) and is imported by name when wanted.
"""
