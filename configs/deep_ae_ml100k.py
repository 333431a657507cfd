r"""The deep AE (Kuchaiev & Ginsburg 2017) for rating prediction on MovieLens-100K, canonical u1 split.

Item-based rows (items, features = users), as I-AutoRec; masked MSE + L2 (4e-3), Adam 3e-3 with a
cosine decay, batch 256, 200 epochs (the I-AutoRec sweep's choices). The validation sweep in
docs/results.md compared (500,) and (500, 500) sigmoid layers with code dropout 0 and 0.5: one layer
without dropout validated best, i.e. I-AutoRec's architecture; the deeper and dropped-out variants
were worse on this small dataset. SELU (the paper's choice) validated at RMSE 1.08 in an earlier
exploratory run (batch 64, constant lr 1e-3, L2 1e-3, code dropout 0.5). Validation = 10% of u1.base held out (no tuning on u1.test).

  python train.py --config=configs/deep_ae_ml100k.py --config.data.path=../shared/data/ml-100k/u.data
  python eval.py --workdir=workdirs/deep_ae_ml100k --split=test

Result (docs/results.md): validation RMSE 0.9033; refit on all of u1.base
(--config.data.val_fraction=0), u1.test RMSE 0.9045. Without a path it trains on embedded synthetic
ratings.
"""

from configs import autorec_ml100k


def get_config():
  c = autorec_ml100k.get_config()
  del c.model["hidden"]
  c.model.name = "deep_ae"
  c.model.layers = (500,)
  c.model.activation = "sigmoid"
  c.model.tied = False
  c.model.code_dropout = 0.0
  c.model.input_dropout = 0.0
  c.model.last_activation = False

  # Loss (masked MSE + l2 4e-3), optimizer, schedule, batch and epochs: autorec_ml100k's.
  c.train.refeed_steps = 0
  return c
