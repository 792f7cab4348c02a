"""Task functions, one module per area. Importing this package registers every @queueable
task, so a worker that imports any task module can run tasks of all areas."""
from igneous_like.tasks import ccl, image, voxels  # noqa: F401
