"""`kedi serve`: the clinical service of Deep-KEDI's Fig. 11 (docs/SERVICE.md).

Images are encrypted on arrival into an archive of deepkedi containers under
per-study keys from the keystore; users sign in with a role (admin, technologist,
radiologist, researcher, auditor) and see only what the role allows; every access
goes into the keystore's MAC-chained audit trail. The service speaks DICOMweb
(PS3.18: STOW-RS, QIDO-RS, WADO-RS) and serves its own browser viewer.

Modules: :mod:`~deepkedi.server.principal` (roles and the signed-in user),
:mod:`~deepkedi.server.db` (the service's tables), :mod:`~deepkedi.server.deps`
(FastAPI dependencies: who is asking, may they), :mod:`~deepkedi.server.archive`
(the encrypted object store and its pseudonymous index),
:mod:`~deepkedi.server.dicomweb` (the DICOMweb routes), :mod:`~deepkedi.server.viewer`
(the web viewer's pages and routes, the security headers), :mod:`~deepkedi.server.app`
(``create_app``). FastAPI, uvicorn and argon2-cffi come with the ``server`` extra.
"""
