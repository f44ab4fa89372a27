"""Evaluation: image-quality metrics under named, published protocols.

Modules (imported on demand; this package imports nothing itself):

- :mod:`~posetransfer.eval.ssim`: skimage-exact SSIM (Gaussian sigma 1.5 / uniform win-51),
  batched float64 torch, masked SSIM;
- :mod:`~posetransfer.eval.metrics`: PSNR, L1 and masked L1 with explicit scales;
- :mod:`~posetransfer.eval.masks`: pose-gan keypoint masks (Market-1501 mask-SSIM);
- :mod:`~posetransfer.eval.lpips`: LPIPS v0.1 AlexNet in plain torch;
- :mod:`~posetransfer.eval.fid`, :mod:`~posetransfer.eval.inception`: FID/KID on TF-Inception
  pool3 features;
- :mod:`~posetransfer.assets`: where weight files are looked for (never downloaded);
- :mod:`~posetransfer.eval.protocols`: the named protocols;
- :mod:`~posetransfer.eval.matching`, :mod:`~posetransfer.eval.evaluate`,
  :mod:`~posetransfer.eval.results`: the folder-level runner behind ``posetransfer evaluate``
  (:mod:`~posetransfer.cli.evaluate`).
"""
