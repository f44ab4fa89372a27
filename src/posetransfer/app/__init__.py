"""The web app: ``posetransfer serve``, a Gradio page to re-pose a photo or animate it from a video.

Optional extra ``app`` (``pip install 'posetransfer[app]'``: Gradio). Modules:

- :mod:`~posetransfer.app.config`: :class:`AppConfig` (server, limits, queue), the input error;
- :mod:`~posetransfer.app.poses`: the built-in target poses, the pose canvas and its editing;
- :mod:`~posetransfer.app.engine`: the model side (no Gradio): uploads in, pictures and MP4 out;
- :mod:`~posetransfer.app.network`: refuses any connection off this machine while serving;
- :mod:`~posetransfer.app.ui`, :mod:`~posetransfer.app.photo_tab`,
  :mod:`~posetransfer.app.video_tab`, :mod:`~posetransfer.app.gradio_io`: the page;
- :mod:`~posetransfer.app.server`: :class:`~posetransfer.app.server.AppServer`, start and stop.

Importing this package imports no Gradio; only the page modules and the server do.
"""
