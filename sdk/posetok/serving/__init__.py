"""Serving a bundle on NVIDIA Triton Inference Server.

    posetok serve BUNDLE              # the bundled tritonserver, posetok inside (Python backend)
    posetok serve-bench BUNDLE --json # throughput and latency, dynamic batching on and off
    posetok export --triton DIR       # a model repository for the NGC Triton container

Modules:
    models      the served models: one ``ServedModel`` entry each (name, bundle
                role, tensors, the function that runs it); ``MODELS``
    repository  config.pbtxt text and model-repository folders (also used by
                ``posetok export --triton``)
    python_model the Python-backend model class run inside the Triton stub
    environment the serving venv (``.venv-serve``) and the tritonserver files in it
    processes   free ports, process groups, resident memory, the child's pre-exec hook
    server      starting and stopping tritonserver (``TritonServer``)
    bench       ``posetok serve-bench``

Importing this package imports nothing beyond the standard library and
numpy; the Triton pieces (``triton_python_backend_utils``, ``tritonclient``)
are imported only where they run, so the device wheel can carry it.
"""
