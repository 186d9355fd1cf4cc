"""The Airflow DAG file for `highlevel_sync`: copy or symlink it into your DAGs folder.

The DAG itself lives in the installed package (`highlevel_sync.airflow_dag`: shards, mapped tasks,
settings); this file only exposes it where Airflow looks for DAGs. See README, "Run on Airflow".
"""

from highlevel_sync.airflow_dag import highlevel_sync_dag  # noqa: F401  (Airflow collects module-level DAGs)
