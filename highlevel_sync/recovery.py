"""What a killed run left in the pipeline's working directory, made safe before a new run extracts.

Why pending packages are discarded, never loaded (the cause of the post-SIGKILL schema mismatch)
-----------------------------------------------------------------------------------------------
A load package, the pipeline's stored schema (`schemas/highlevel.schema.json`) and its local state
(`state.json`, our cursors) are three files that dlt 1.31 does not write atomically together.
`Pipeline.extract` commits the package (its files move to `normalize/extracted/`, with a copy of
the *new* schema inside) from within the call; the stored schema and then the state are saved
only afterwards, by its `with_schemas_sync` and `with_state_sync` decorators. A SIGKILL in between
(kill point `extract_committed`) leaves a package whose tables and hints the stored schema does
not know. `Normalize.run` then deliberately prefers the stored schema over the package's own
("the storage schema hash … is different from extract package schema hash …. Storage schema was
used."), so the package is normalized against the stale schema: a table the extract added is "not
found", nested tables are created without the merge root key, declared columns (such as
conversations' `last_manual_message_date`) are missing from the schema while the data or later
packages have them, and the next load fails with a binder error. Normalize has the mirror-image
window: it saves the stored schema before it commits the normalized package (`mid_normalize`).

Loading the package after repairing the schema would need dlt internals (the schema storage and
the package's schema file) and would still leave the local cursors behind the loaded rows.
`Pipeline.abort_packages` is dlt's public way back to the last point where all three agree: it
deletes the pending packages and restores the stored schema *and* the local state to the snapshot
taken when the oldest of them started — which the destination also agrees with, because the
destination only ever received packages that were complete before that point, or (killed
mid-load) rows of the aborted package that merge makes harmless: every table here is
`write_disposition="merge"`, so re-reading and re-loading those rows leaves each record once. The
cost is requests: the rows of at most one batch (a contacts chunk, `chunk_rows`) are read again.

Besides packages, a kill leaves dlt's scratch folders: the uncommitted extract folder
(`normalize/<random id>/`, kill point `mid_extract`) and the half-normalized package
(`load/new/<load id>/`, `mid_normalize`). dlt never looks at them again; they are deleted here so
crashes do not pile up data files (they hold contact PII) in the working directory. This runs under
the pipeline's run lock, so no other run of this pipeline is writing them.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger("highlevel.sync")

# dlt 1.31's working-directory layout: the folders a normal run leaves; everything else is scratch
NORMALIZE_KEPT = frozenset({"extracted"})


def discard_unloaded(pipeline: Any) -> None:
    """Discard what an interrupted earlier run extracted but did not load, and its scratch files."""
    if pipeline.has_pending_data:
        logger.warning("discarding data an interrupted earlier run did not load; cursors are rewound so this run "
                       "reads those rows again")
        pipeline.abort_packages()
        with contextlib.suppress(Exception):
            pipeline.load()  # completes the aborted package's record
    _remove_scratch(Path(pipeline.working_dir))


def _remove_scratch(working_dir: Path) -> None:
    scratch = [path for path in (working_dir / "normalize").glob("*")
               if path.is_dir() and path.name not in NORMALIZE_KEPT]
    scratch += [path for path in (working_dir / "load" / "new").glob("*") if path.is_dir()]
    for path in scratch:
        logger.info("removing %s, left by an interrupted run", path)
        shutil.rmtree(path, ignore_errors=True)
