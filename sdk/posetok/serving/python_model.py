"""The Triton Python-backend model every posetok-served model runs.

Triton's Python-backend stub imports this through the one-line ``model.py``
the repository writer puts in each model's version folder. The model's
config.pbtxt ``parameters`` say which ``models.MODELS`` entry it is
(``posetok_model``), the bundle folder (``bundle``) and the runtime settings
(``settings``, JSON). ``triton_python_backend_utils`` exists only inside the
stub, so it is imported in ``initialize``.
"""
from __future__ import annotations

import json

from .models import run_batched, served_model


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict) -> None:
        """Open the bundle once per model instance.

        Args:
            args: what Triton passes; ``args["model_config"]`` is the config as JSON.
        """
        import triton_python_backend_utils as pb_utils

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.model = served_model(params["posetok_model"])
        self.runtime = self.model.open(params["bundle"], json.loads(params.get("settings", "{}")))

    def execute(self, requests: list) -> list:
        """Answer the requests the scheduler grouped (one batch when dynamic batching formed one).

        Args:
            requests: ``pb_utils.InferenceRequest`` objects.

        Returns:
            One ``pb_utils.InferenceResponse`` per request, in order; a request
            the runtime refused gets a response with an INVALID_ARG error. An
            optional input a request left out is absent from its arrays.
        """
        pb = self._pb
        arrays = []
        for request in requests:
            tensors = {t.name: pb.get_input_tensor_by_name(request, t.name) for t in self.model.inputs}
            arrays.append({name: tensor.as_numpy() for name, tensor in tensors.items() if tensor is not None})
        responses = []
        for result in run_batched(self.model, self.runtime, arrays):
            if isinstance(result, Exception):
                code = pb.TritonError.INVALID_ARG if isinstance(result, ValueError) else pb.TritonError.INTERNAL
                responses.append(pb.InferenceResponse(error=pb.TritonError(f"{self.model.name}: {result}", code)))
            else:
                responses.append(pb.InferenceResponse([pb.Tensor(k, v) for k, v in result.items()]))
        return responses

    def finalize(self) -> None:
        """Release the runtime sessions."""
        close = getattr(self.runtime, "close", None)
        if close:
            close()
