"""The papers behind the claims, by the short names the studies cite them with."""

PAPERS = {
    "He2015": "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv 2015).",
    "He2016": "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.",
    "Veit2016": "Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks. "
    "NeurIPS 2016.",
    "Balduzzi2017": "Balduzzi, Frean, Leary, Lewis, Ma, McWilliams. The Shattered Gradients Problem: If resnets are "
    "the answer, then what is the question? ICML 2017.",
    "Yang2019": "Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz. A Mean Field Theory of Batch Normalization. "
    "ICLR 2019.",
    "Glorot2010": "Glorot, Bengio. Understanding the difficulty of training deep feedforward neural networks. "
    "AISTATS 2010.",
    "Srivastava2015": "Srivastava, Greff, Schmidhuber. Training Very Deep Networks (Highway Networks). NeurIPS 2015.",
    "Vaswani2017": "Vaswani et al. Attention Is All You Need. NeurIPS 2017.",
    "Xiong2020": "Xiong et al. On Layer Normalization in the Transformer Architecture. ICML 2020.",
    "Hochreiter1997": "Hochreiter, Schmidhuber. Long Short-Term Memory. Neural Computation 1997.",
    "Cho2014": "Cho et al. Learning Phrase Representations using RNN Encoder-Decoder (the GRU). EMNLP 2014.",
    "Bengio1994": "Bengio, Simard, Frasconi. Learning long-term dependencies with gradient descent is difficult. "
    "IEEE TNN 1994.",
    "Huang2017": "Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017.",
    "Bengio2003": "Bengio, Ducharme, Vincent, Jauvin. A Neural Probabilistic Language Model. JMLR 2003.",
    "Chen2017": "Chen et al. Enhanced LSTM for Natural Language Inference (ESIM). ACL 2017.",
    "Li2018": "Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018.",
    "Zhang2019": "Zhang, Dauphin, Ma. Fixup Initialization: Residual Learning Without Normalization. ICLR 2019.",
    "De2020": "De, Smith. Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep "
    "Networks (SkipInit). NeurIPS 2020.",
    "Bachlechner2020": "Bachlechner et al. ReZero is All You Need: Fast Convergence at Large Depth. UAI 2021 "
    "(arXiv 2020).",
    "Huang2016": "Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016.",
}
