"""Physical normalisation of a dataset: expected event counts and the background rate, for Benchmark.meta.

What the keys mean (read by the ``mu_limit`` comparative metric and the
``eff@<rate>`` working points of ``eff_at_bkg``):

* ``n_background_expected``: background events expected in the whole
  (post-trigger) sample at the stated integrated luminosity,
  sigma x efficiency x L_int. The test background is scaled to it.
* ``n_signal_expected[signal]``: the same for each signal at its nominal cross
  section, so mu = 1 is the signal as generated (sigma x filter efficiency x
  forced branching fraction) and ``mu_up`` is the expected 95 % CL limit on
  sigma / sigma_nominal.
* ``background_rate_hz``: the total background rate after the trigger at the
  stated instantaneous luminosity; a working point "R events per second"
  is eps_B = R / background_rate_hz.
* ``normalisation``: the luminosities and where the cross sections come from.

Luminosities: 2e34 cm^-2 s^-1 (LHC Run 3 levelled peak) for rates and
100 fb^-1 (the order of a Run 2 / Run 3 data set) for yields. 1 pb^-1 = 1e36 cm^-2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Instantaneous luminosity of the rates, cm^-2 s^-1.
INSTANTANEOUS_LUMINOSITY = 2e34
#: Integrated luminosity of the expected yields, pb^-1 (100 fb^-1).
INTEGRATED_LUMINOSITY_PB = 1e5
_PB_PER_CM2 = 1e36  # 1 pb^-1 = 1e36 cm^-2


def rate_hz(sigma_pb: float, luminosity: float = INSTANTANEOUS_LUMINOSITY) -> float:
    """Event rate in Hz of a cross section (pb) at an instantaneous luminosity (cm^-2 s^-1)."""
    return sigma_pb * luminosity / _PB_PER_CM2


def yields_meta(background_sigma_pb: float, signal_sigma_pb: Mapping[str, float], source: str,
                notes: str = "") -> dict[str, Any]:
    """The Benchmark.meta keys of a dataset whose background and signal sigma x efficiency (pb) are known."""
    return {
        "n_background_expected": background_sigma_pb * INTEGRATED_LUMINOSITY_PB,
        "n_signal_expected": {name: sigma * INTEGRATED_LUMINOSITY_PB for name, sigma in sorted(signal_sigma_pb.items())},
        "background_rate_hz": rate_hz(background_sigma_pb),
        "signal_yields": {name: {"sigma_x_eff_pb": sigma, "expected_events": sigma * INTEGRATED_LUMINOSITY_PB}
                          for name, sigma in sorted(signal_sigma_pb.items())},
        "normalisation": {
            "integrated_luminosity_fb-1": INTEGRATED_LUMINOSITY_PB / 1e3,
            "instantaneous_luminosity_cm-2s-1": INSTANTANEOUS_LUMINOSITY,
            "background_sigma_x_eff_pb": background_sigma_pb,
            "source": source + (f"; {notes}" if notes else ""),
        },
    }


def l1_generated_yields(provenance_path: Path) -> dict[str, Any]:
    """Yields of a sample made by ``hepad-bench generate l1``, from the cross sections its provenance.json records.

    Background: the sum over processes of sigma_gen x filter efficiency (the
    filter is the generator's lepton trigger emulation); signals: their
    sigma x filter efficiency x forced branching fraction (``sigma_x_eff_pb``).
    Empty when the file or the numbers are missing.
    """
    if not provenance_path.is_file():
        return {}
    record = json.loads(provenance_path.read_text())
    sources = record.get("sources", {})
    processes = ((sources.get("background") or {}).get("attributes") or {}).get("processes") or {}
    signals = {role.split("/", 1)[1]: src for role, src in sources.items() if role.startswith("signal/")}
    try:
        background = sum(float(p["sigma_x_eff_pb"]) for p in processes.values())
        signal = {name: float(s["attributes"]["process"]["sigma_x_eff_pb"]) for name, s in signals.items()}
    except (KeyError, TypeError, ValueError):
        return {}
    if background <= 0 or not signal:
        return {}
    missing = [f"{name} (no event passed the trigger in {int(p.get('n_tried', 0))} tried; "
               f"sigma x eff < {float(p['sigma_x_eff_pb_upper_95']):.3g} pb at 95 % CL)"
               for name, p in sorted(processes.items())
               if float(p.get("sigma_x_eff_pb", 0)) == 0 and "sigma_x_eff_pb_upper_95" in p]
    notes = ("background processes without events: " + ", ".join(missing)) if missing else ""
    return yields_meta(background, signal, "Pythia 8 cross sections x generator filter efficiencies (provenance.json)",
                       notes)


#: The l+X@HLT stream of ADC2021 (Cerri et al., JHEP 05 (2019) 036): events per month per process after the trigger.
ADC2021_EVENTS_PER_MONTH = {"W": 110e6, "QCD": 63e6, "Z": 12e6, "ttbar": 0.6e6}
_MONTH_S = 30 * 86400


def adc2021_rate() -> dict[str, Any]:
    """The published background rate of the ADC2021 stream; no published signal yields, so no n_*_expected."""
    total = sum(ADC2021_EVENTS_PER_MONTH.values())
    return {
        "background_rate_hz": total / _MONTH_S,
        "normalisation": {
            "source": "background rate from Cerri et al., JHEP 05 (2019) 036 (W 110 M, QCD 63 M, Z 12 M, ttbar 0.6 M "
                      "events/month after the l+X@HLT trigger; month = 30 days); no published signal cross sections, "
                      "so mu limits use the fallback normalisation",
        },
    }
