"""The ciphers: the container format, segmented AES-GCM, the hybrid and paper suites, DICOM-native files.

These are the primitives; the front door (:mod:`deepkedi.api`, re-exported by
``deepkedi``) chooses among them for the caller.
"""
