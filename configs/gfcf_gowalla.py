r"""GF-CF (Shen et al. 2021, "How Powerful is Graph Convolution for Recommendation?") on the LightGCN
Gowalla split: BSPM's model without sharpening (``jaxae/models/bspm.py``): scores
``x P~ + 0.3 x D_I^-1/2 V V^T D_I^1/2`` with ``P~ = R~^T R~`` the normalized item-item matrix and
``V`` the top 256 right singular vectors of ``R~``; the paper's Gowalla settings. A 5-minute fit
on the 2-core CPU (one sparse product pass per block of filter rows).

  python train.py --config=configs/gfcf_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/gfcf_gowalla --split=test

Result (docs/results.md): validation Recall@20 0.2024 (BSPM-EM, configs/bspm_gowalla.py: 0.2123);
refit on all of train.txt (--config.data.val_fraction=0), test Recall@20 0.1849 / NDCG@20 0.1518
(LightGCN definitions; published GF-CF 0.1849 / 0.1518).
"""

from configs import bspm_gowalla


def get_config():
  c = bspm_gowalla.get_config()      # data, evaluation, solver settings: BSPM's
  c.model.factor_dim = 256
  c.model.idl_beta = 0.3
  c.model.sharpen_time = 0.0         # no sharpening: x P~ + beta * ideal low-pass
  return c
