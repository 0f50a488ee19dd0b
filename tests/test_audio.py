"""Audio: folders of WAV files (tests/data/fsdd: 12 clips of the Free Spoken Digit Dataset, digits 0-2), WaveGAN
(preset fsdd), WAV and spectrogram outputs, and bad audio input (one warning per file, or one line and exit 2)."""

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.config import DataConfig, resolve_config
from ganforge.data import load_dataset
from ganforge.data.audio import fsdd_split, read_wav, resample
from ganforge.errors import GanforgeError
from ganforge.models import build_discriminator, build_generator
from ganforge.models.stftgan import LogSpectrogram
from ganforge.models.wavegan import PhaseShuffle

FSDD = Path(__file__).parent / "data" / "fsdd"
TINY = ["--set", "model.widths=[4]", "--set", "train.batch_size=4", "--set", "d_steps=1", "--set", "log.every=1",
        "--set", "log.sample_every=2 steps", "--set", "log.checkpoint_every=2 steps", "-q"]


def write(path: Path, x: np.ndarray, rate: int = 8000, width: int = 2) -> Path:
    """x (frames, channels) in [-1, 1] as PCM."""
    ints = np.round(x * (2 ** (8 * width - 1) - 1)).astype("<i4")
    pcm = ints.view(np.uint8).reshape(*ints.shape, 4)[..., :3] if width == 3 else ints.astype(f"<i{width}")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def test_fsdd_folder_loads_labelled_padded_clips_in_range():
    data = load_dataset(DataConfig(name=str(FSDD)))
    assert data.kind == "audio" and data.shape == (1, 8192) and data.rate == 8000
    assert data.info["classes"] == ["0", "1", "2"] and sorted(data.y.bincount().tolist()) == [4, 4, 4]
    first = read_wav(sorted(FSDD.glob("*.wav"))[0])[0][:, 0]
    assert torch.allclose(data.x[0, 0, : len(first)], torch.from_numpy(first))  # the clip, then silence
    assert data.x[0, 0, len(first):].abs().max() == 0 and data.x.abs().max() <= 1


def test_official_fsdd_split_is_index_0_to_4_for_test():
    files = [Path(f"3_theo_{i}.wav") for i in (0, 4, 5, 49)]
    assert [f.name for f in fsdd_split(files, "test")] == ["3_theo_0.wav", "3_theo_4.wav"]
    assert [f.name for f in fsdd_split(files, "train")] == ["3_theo_5.wav", "3_theo_49.wav"]


def test_stereo_and_44k_clips_are_mixed_down_and_resampled(tmp_path):
    t = np.arange(4410) / 44100
    tone = 0.5 * np.sin(2 * math.pi * 440 * t)
    write(tmp_path / "a_1.wav", np.stack([tone, tone], 1), rate=44100)
    write(tmp_path / "b_1.wav", 0.5 * np.sin(2 * math.pi * 440 * np.arange(800) / 8000)[:, None], width=4)
    write(tmp_path / "b_2.wav", 0.25 * np.ones((800, 1)), width=3)
    data = load_dataset(DataConfig(name=str(tmp_path), audio_len=1024, sample_rate=8000))
    assert data.info["resampled"] == 1 and data.info["mixed_down"] == 1 and data.y.tolist() == [0, 1, 1]
    spectrum = torch.fft.rfft(data.x[0, 0, :800]).abs()
    assert int(spectrum.argmax()) == 44  # 440 Hz at 8 kHz over 800 samples: bin 44, the tone kept its pitch
    assert data.x[2, 0, :800].mean().item() == pytest.approx(0.25, abs=1e-3)  # 24-bit read right
    assert len(resample(np.ones(441), 44100, 8000)) == 80


def test_wavegan_shapes_and_phase_shuffle():
    cfg = resolve_config("fsdd", overrides={"model.widths": [2]}).model
    G, D = build_generator(cfg, (1, 8192)), build_discriminator(cfg, (1, 8192), n_classes=3)
    x = G(torch.randn(2, cfg.z_dim))
    assert x.shape == (2, 1, 8192) and x.abs().max() <= 1
    assert D(x, torch.tensor([0, 2])).shape == (2,)
    shifted = PhaseShuffle(2)(torch.arange(10.0).view(1, 1, 10).expand(64, 1, 10))
    offsets = {int(s[0, 5] - 5) for s in shifted}
    assert offsets == {-2, -1, 0, 1, 2}  # every shift drawn, each row a whole shifted copy
    assert all(torch.equal(s[0, 2:8] - s[0, 2:8][0], torch.arange(6.0)) for s in shifted)


def test_stftgan_makes_clips_and_reads_their_spectrogram():
    cfg = resolve_config("fsdd", overrides={"model.arch": "stftgan", "model.widths": [2]}).model
    G, D = build_generator(cfg, (1, 8192), n_classes=3), build_discriminator(cfg, (1, 8192), n_classes=3)
    x = G(torch.randn(2, cfg.z_dim), torch.tensor([0, 2]))
    assert x.shape == (2, 1, 8192) and x.abs().max() <= 1
    x = x.detach().requires_grad_()
    (grad,) = torch.autograd.grad(D(x, torch.tensor([0, 2])).sum(), x, create_graph=True)
    grad.pow(2).sum().backward()  # R1/R2 and WGAN-GP need D's gradient to be differentiable
    tone = torch.sin(2 * math.pi * 20 / 256 * torch.arange(8192.0)).view(1, 1, -1)  # bin 20 of a 256-point STFT
    power = LogSpectrogram()(tone)
    assert power.shape == (1, 1, 128, 64) and (power[0, 0, :, 1:-1].argmax(0) == 20).all()
    with pytest.raises(GanforgeError, match="multiple of 2048"):
        build_generator(cfg, (1, 3000))


@pytest.mark.slow
def test_fsdd_trains_writes_spectrogram_grids_and_wavs(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "fsdd", "--data", str(FSDD), "--steps", "2", "--run-dir", str(run), *TINY]) == 0
    assert (run / "final.png").exists() and (run / "samples" / "real.png").exists()
    assert main(["sample", str(run), "--class", "all", "--n", "2", "--out", str(tmp_path / "w") + "/"]) == 0
    clips = sorted((tmp_path / "w").rglob("*.wav"))
    assert [c.parent.name for c in clips] == ["0", "0", "1", "1", "2", "2"]
    x, rate, channels = read_wav(clips[0])
    assert (x.shape, rate, channels) == ((8192, 1), 8000, 1)
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "all.wav")]) == 0
    assert read_wav(tmp_path / "all.wav")[0].shape[0] == 3 * (8192 + 2000)
    assert main(["sample", str(run), "--n", "1", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert page.count('<audio controls src="data:audio/wav;base64,') == 8


def test_bad_wavs_are_one_warning_each_and_nothing_usable_is_one_line(tmp_path, capsys):
    write(tmp_path / "silent_1.wav", np.zeros((100, 1)))
    write(tmp_path / "empty_1.wav", np.zeros((0, 1)))
    (tmp_path / "broken_1.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code = main(["train", "--preset", "fsdd", "--data", str(tmp_path), "--steps", "1", "--run-dir",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and sum("skipping" in e for e in err) == 3
    assert "no usable WAV file" in err[-1] and not (tmp_path / "r").exists()


def test_audio_with_an_image_preset_and_fsdd_offline_are_one_line(tmp_path, capsys):
    assert main(["train", "--preset", "mnist-conv", "--data", str(FSDD), "--steps", "1",
                 "--run-dir", str(tmp_path / "a")]) == 2
    assert "needs model.arch wavegan or stftgan" in capsys.readouterr().err
    code = main(["train", "--preset", "fsdd", "--steps", "1", "--run-dir", str(tmp_path / "b"),
                 "--set", f"data.root={tmp_path}", "--set", "data.download=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "recordings" in err[0]


def test_data_json_names_the_audio_layout(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "fsdd", "--data", str(FSDD), "--steps", "1", "--run-dir", str(run), *TINY]) == 0
    info = json.loads((run / "data.json").read_text())
    assert info["kind"] == "audio" and info["clips"] == 12 and info["sample_rate"] == 8000


def test_mel_filters_are_triangles_peaking_at_their_centres():
    from ganforge.metrics.audio import mel_filters

    f = mel_filters(256, 10, 8000)
    assert f.shape == (10, 129) and f.min() >= 0 and f.max() <= 1
    peaks = f.argmax(1)
    assert torch.all(peaks[1:] > peaks[:-1])  # centres rise with the filter index
    assert torch.allclose(f[:, 0], torch.zeros(10)) and f[-1, -1] == 0  # 0 Hz and rate / 2 are band edges


def test_memorisation_and_accuracy_read_from_the_classifier_features():
    from ganforge.metrics.audio import AudioReference
    from ganforge.metrics.features import Extractor

    class Identity(torch.nn.Module):  # features = the clip's first two samples; probs from them
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # the extractor finds its device by a parameter

        def features(self, x):
            return x[:, 0, :2]

        def head(self, f):
            return f * 100

    ext = Extractor("toy", Identity(), {"test_accuracy": 1.0}, classes=2)
    train = {"features": torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)}
    test_x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.9, 0.1]]])
    test = ext(test_x)
    ref = AudioReference(ext, train, test, torch.tensor([0, 1, 0]),
                         torch.cdist(test["features"], train["features"]).min(1).values)
    samples = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]], [[0.0, 2.0]]])  # the first copies a training clip
    got = ref.score(samples, torch.tensor([1, 0, 1]))  # read as 0 (a tie), 0, 1
    assert got["closer_than_real"] == pytest.approx(1 / 3, abs=1e-4) and got["nn_train_min"] == 0
    assert got["accuracy"] == pytest.approx(2 / 3, abs=1e-4) and got["accuracy_per_class"] == [1.0, 0.5]
    assert got["nn_train_min_real"] == pytest.approx(math.sqrt(0.82), abs=1e-4)


@pytest.mark.slow
def test_eval_of_an_audio_run_trains_the_classifier_once_and_scores(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "fsdd", "--data", str(FSDD), "--steps", "1", "--run-dir", str(run), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "30"]) == 0
    first = capsys.readouterr()
    record = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["accuracy"] <= 1 and len(record["accuracy_per_class"]) == 3
    assert record["inception_score"] >= 1 and "fid" in record and "log-mel classifier reads" in first.err
    assert main(["eval", str(run), "--n", "30"]) == 0
    assert "training the log-mel" not in capsys.readouterr().err  # cached
