"""Task functions, one module per area; `igneous_like.tasks.registry` imports them all."""
