import torch

from artnet import create_model
from artnet.models.tsn import consensus_forward


def test_consensus_averages_segment_logits_before_softmax():
    model = create_model("c3d_r18", width_mult=0.125, depths=(1, 1, 1, 1), num_classes=4).eval()
    clips = torch.randn(3, 2, 3, 8, 32, 32)
    expected = torch.stack([(model(clips[:, 0]) + model(clips[:, 1])) / 2])[0]
    torch.testing.assert_close(consensus_forward(model, clips), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(consensus_forward(model, clips[:, 0]), model(clips[:, 0]))
