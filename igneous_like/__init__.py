"""igneous_like: chunked, queue-driven processing of Neuroglancer Precomputed volumes.

Heavy modules (CloudVolume, task queues) are imported by the submodules that need them,
so `import igneous_like` stays cheap for the CLI and for workers.
"""
__version__ = "0.1.0"
