"""Training and evaluating the learned nets (synthetic data, DetH against D_Exp, RCAN, the AU
regressor used only for evaluation). Development tools: left out of the extension zip; serving
(``backend.learned``) never imports them."""
