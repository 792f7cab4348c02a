"""A task for worker tests: note its start in a file, sleep, note its end. Workers load it
through IGNEOUS_LIKE_TASK_MODULES=sleep_task (with this folder on PYTHONPATH)."""
import time

from taskqueue import queueable


@queueable
def SleepTask(name: str, seconds: float, log_path: str) -> None:
    with open(log_path, "a") as log:
        log.write(f"start {name}\n")
    time.sleep(seconds)
    with open(log_path, "a") as log:
        log.write(f"end {name}\n")
