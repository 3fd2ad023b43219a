"""NormScope in the training loops people already use: thin adapters over ``normcore.watch``.

    from normcore.integrations.lightning import NormScopeCallback     # normscope[lightning]
    from normcore.integrations.transformers import NormScopeCallback  # normscope[transformers]

Each is a callback of its framework that drives one ``Watch`` of the whole model (or the
``layers=`` it names) through the framework's own hooks (normcore.integrations.session), and
sends the frames to a running server (``url=``, ``token=``: a watched run, drawn live), to a
JSON-lines file (``out=``) or keeps them (``callback.watch.frames``). Neither framework is
imported here: each adapter imports its own, so normcore needs neither.
"""
