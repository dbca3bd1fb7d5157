"""``segbench export``: a model as a small safetensors file, or as ONNX checked against PyTorch."""

from __future__ import annotations

from segbench.cli.args import add_option
from segbench.cli.common import add_model_input_args, load_cli_model
from segbench.errors import UserError
from segbench.files import prepare_output_file, write_failure


def add_parser(sub) -> None:
    """The ``export`` subcommand and its options."""
    x = sub.add_parser(
        "export", help="write a model as a small safetensors file, or as ONNX checked against PyTorch",
        description="--format safetensors (default): the weights and metadata, fp16 or fp32. --format onnx: an "
        "ONNX model with dynamic batch, height and width, written only after its logits and mIoU were checked "
        "against PyTorch's on sample images (numbers printed and stored in the file's metadata_props); "
        "needs pip install 'segbench[onnx]'.",
    )
    x.add_argument("model", help="checkpoint path, ARCH.TAG, or ARCH with --weights")
    x.add_argument("--output", required=True, help="output file (.safetensors, or .onnx with --format onnx)")
    add_option(x, "--format", default="safetensors",
                  help="file format (default safetensors)")
    add_option(x, "--dtype", default="fp16", help="safetensors weights dtype")
    g = x.add_argument_group("ONNX (--format onnx)")
    g.add_argument("--int8", action="store_true",
                   help="write an int8 model (ONNX Runtime static quantisation, QDQ, per-channel weights)")
    g.add_argument("--calibration", metavar="DIR",
                   help="images calibrating the int8 ranges (default: the CamVid val sample shipped with segbench)")
    g.add_argument("--data", help="dataset or image folder the check runs on (default: the shipped CamVid val sample)")
    g.add_argument("--split", default="val", help="split of --data (default val)")
    add_option(g, "--max-images", default=8, help="images checked (default 8)")
    add_option(g, "--atol", default=1e-3,
                  help="largest allowed |logits difference| of the fp32 model (default 1e-3)")
    add_option(g, "--max-miou-drop", metavar="POINTS",
                  help="largest allowed mIoU drop in points (default 0.05 for fp32, 0.5 for --int8)")
    add_option(g, "--exporter",
                  help="torch.onnx exporter (default dynamo; torchscript is deprecated by PyTorch)")
    add_option(g, "--opset", help="ONNX opset, 17 or newer (default 18 for dynamo, 17 for torchscript)")
    x.add_argument("--keep-aux", action="store_true", help="keep the auxiliary head (dropped by default)")
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--weights", help="weights for a bare ARCH or smp: ('none' or a local file)")
    add_model_input_args(x)
    x.set_defaults(func=run)


def run(args) -> int:
    import torch

    from segbench.engine.checkpoint import save_safetensors

    out = prepare_output_file(args.output, args.overwrite)
    if args.format != "onnx":
        onnx_only = [f"--{k.replace('_', '-')}" for k in ("int8", "calibration", "data", "exporter", "opset")
                     if getattr(args, k) not in (None, False)]
        if onnx_only:
            raise UserError(f"{', '.join(onnx_only)}: only with --format onnx")
    loaded = load_cli_model(args)
    info = loaded.info
    model = loaded.model
    if getattr(info, "kind", "") and args.format != "onnx":
        raise UserError(f"{args.model}: --format safetensors holds segbench's own networks only; use --format onnx")
    if not args.keep_aux and getattr(model, "aux_head", None) is not None:
        model.aux_head = None  # inference-only file: the auxiliary head is a training aid
    if args.format == "onnx":
        from segbench.export import export_checked

        export_checked(
            model, info, out, int8=args.int8, data=args.data, split=args.split, max_images=args.max_images,
            calibration=args.calibration, exporter=args.exporter or "dynamo", opset=args.opset, atol=args.atol,
            max_miou_drop=args.max_miou_drop, overwrite=args.overwrite,
        )
        return 0
    meta = {"arch": info.arch, "num_classes": info.num_classes, "class_names": info.class_names,
            "palette": [list(c) for c in info.palette], **info.preprocessing.to_dict()}
    for key in ("iteration", "val", "config"):
        if key in info.meta:
            meta[key] = info.meta[key]
    try:
        size = save_safetensors(model, meta, out, torch.float16 if args.dtype == "fp16" else torch.float32)
    except OSError as exc:  # write_bytes_atomic removed its temporary file (and says a full disk as a WriteError)
        failure = write_failure(out, exc, "the safetensors file")
        if failure is None:
            raise
        raise failure from None
    print(f"wrote {out} ({size / 1e6:.2f} MB, {args.dtype})")
    return 0
