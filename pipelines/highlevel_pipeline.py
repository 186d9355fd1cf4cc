"""The sync as a script, for those who run dlt pipelines as `python pipelines/<name>_pipeline.py`.

Same as the `highlevel-sync` command (installed with the package): `python pipelines/highlevel_pipeline.py run`.
"""

from highlevel_sync.highlevel_pipeline import main

if __name__ == "__main__":
    main()
