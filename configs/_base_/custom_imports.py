# Loads mmbcn: registers its layers (WSConv2d, BCN, ...) and hooks. Every
# mmbcn config inherits this file; the shapes bases add their dataset.
custom_imports = dict(imports=['mmbcn'], allow_failed_imports=False)
