"""The hypervolume figure: nothing hides the figures it prints (the artists, never pixels)."""
from __future__ import annotations

from autocompress.report.trace import HypervolumeInfo


def _info(profile: str, fractions: list[float], ref_ms: float) -> HypervolumeInfo:
    numbers = tuple(range(len(fractions)))
    box = ref_ms * 1.0                            # accuracy's reference is 0: box = ref_ms
    return HypervolumeInfo(profile=profile, y_label="accuracy",
                           objectives=("accuracy", f"{profile}.latency_ms"),
                           senses=("max", "min"), reference=(0.0, ref_ms),
                           reference_sources=("max seen",), numbers=numbers,
                           values=tuple(f * box for f in fractions),
                           front_sizes=tuple(1 + i // 3 for i in numbers))


def test_the_legend_does_not_hide_a_low_line_s_final_figure(tmp_path, monkeypatch) -> None:
    """Three devices, one whose front spans a sliver of its latency box (a Jetson whose
    candidates all cost about the same): its '1.0% (front 4)' sat under the legend, pinned
    to the lower right, where every line ends."""
    import autocompress.report.figures as figures

    infos = [_info("pixel4", [0.14, 0.14, 0.15, 0.155, 0.16], 0.25),
             _info("jetson_orin_nano", [0.008, 0.008, 0.009, 0.01, 0.01], 0.434),
             _info("stm32f746", [0.31, 0.31, 0.34, 0.41, 0.45], 20.4)]
    kept = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, dpi: kept.setdefault("f", fig))
    figures.render_hypervolume(infos, tmp_path / "hv.png")
    fig = kept["f"]
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [t for t in ax.texts if "(front" in t.get_text()]
    assert len(labels) == 3
    for text in labels:
        assert not legend.overlaps(text.get_window_extent(renderer)), text.get_text()
