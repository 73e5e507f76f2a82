"""``vae-ood info``: what a bundle holds (manifest, model, partitions, provenance)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vae_ood_monitor.cli.cmd_calibrate import describe_partitions
from vae_ood_monitor.cli.common import emit_json

__all__ = ['register']


def register(commands: argparse._SubParsersAction) -> None:
    """Add info."""
    parser = commands.add_parser('info', help='show what a bundle contains')
    parser.add_argument('model', type=Path)
    parser.add_argument('--json', action='store_true', help='print the manifest as JSON')
    parser.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from vae_ood_monitor.core.bundle import load_bundle

    bundle = load_bundle(args.model)
    manifest = bundle.manifest
    if args.json:
        data = manifest.to_dict()
        for part in data['partitions']:
            part['calibration_scores'] = f'<{len(part["calibration_scores"])} scores>'
        emit_json(data)
        return 0
    spec, model = manifest.input, manifest.model
    print(f'{args.model}: bundle {manifest.name!r} (schema {manifest.schema_version}, created '
          f'{manifest.created or "?"})')
    print(f'  model   sha256 {model.sha256[:16]}..., {model.precision.value}, '
          f'{model.parameters:,} parameters, {model.macs / 1e6:.1f} MMAC, latent '
          f'{model.latent_dim}')
    print(f'  input   {spec.width}x{spec.height} {spec.channel_order.value}, '
          f'{spec.interpolation.value} resize, mean {spec.mean}, std {spec.std}')
    if manifest.flow is not None:
        flow = manifest.flow
        print(f'  flow    a stack of {flow.stack} Farneback fields ({flow.components}) of '
              f'consecutive frames, +-{flow.max_displacement:g} px, restarted after gaps over '
              f'{flow.max_gap_s:g} s')
    if not manifest.partitions:
        print('  not calibrated: run `vae-ood calibrate`')
    else:
        print('  ' + describe_partitions(bundle).replace('\n', '\n  '))
    provenance = manifest.provenance
    if provenance:
        members = provenance.get('members')
        ensemble = (f', an ensemble of {len(members)} seeds '
                    f'({", ".join(str(m.get("seed")) for m in members)})'
                    if isinstance(members, list) and members
                    and all(isinstance(m, dict) for m in members) else '')
        train = provenance.get('train')
        guide = train.get('guide') if isinstance(train, dict) else None
        guided = (', guided dims: ' + ', '.join(f'{kind} (dim {number})' for number, kind
                                                in enumerate(guide))
                  + (' of each model' if ensemble else '')
                  if isinstance(guide, list) and guide else '')
        print(f'  trained preset {provenance.get("preset", "?")}, data '
              f'{provenance.get("data", {}).get("frames", "?")} frames{ensemble}{guided}')
    return 0
