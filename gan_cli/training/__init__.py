"""Training: the loop (:mod:`.loop`), its periodic tasks (:mod:`.tasks`), one step of D and G through the one
path into D (:mod:`.step`), several processes (:mod:`.dist`, :mod:`.spawn`), the GPU speed path
(:mod:`.speed`) and the EMA of G (:mod:`.ema`)."""
