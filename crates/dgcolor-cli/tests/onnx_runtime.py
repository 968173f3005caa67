"""Runs a dgcolor ONNX export in onnxruntime on the given L batch and compares the result
with dgcolor's own ab prediction for it; prints one JSON object.

usage: python3 onnx_runtime.py MODEL.onnx L.npy AB.npy

L.npy is float32 [N, 1, S, S] (L / 50 - 1), AB.npy float32 [N, 2, S, S] (ab / 100). A model
exported without --dynamic-batch has batch 1: its samples are run one at a time.
Called by onnx_runtime.rs; needs numpy and onnxruntime.
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, l_path, ab_path = sys.argv[1:4]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    lightness = np.load(l_path)
    want = np.load(ab_path)
    if inp.shape[0] == 1:
        got = np.concatenate(
            [session.run([out.name], {inp.name: lightness[i : i + 1]})[0] for i in range(len(lightness))]
        )
    else:
        got = session.run([out.name], {inp.name: lightness})[0]
    print(
        json.dumps(
            {
                "onnxruntime": ort.__version__,
                "input": inp.name,
                "input_shape": [d if isinstance(d, int) else str(d) for d in inp.shape],
                "output": out.name,
                "output_shape": list(got.shape),
                "dtype": str(got.dtype),
                "max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want))),
                "metadata": session.get_modelmeta().custom_metadata_map,
            }
        )
    )


if __name__ == "__main__":
    main()
