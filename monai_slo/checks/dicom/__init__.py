"""The DICOM kinds: one association path, a lean C-ECHO path, the kinds on them."""
