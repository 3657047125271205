"""devnag's "GANs in 50 lines" training loop as the seed projects (000, 004) run it, in eager
PyTorch: the honest baseline for the fused engine (numpy real samples, torch.rand noise,
nn.Linear layers, BCELoss, SGD with momentum, 20 D steps then 20 G steps per epoch).
Only the device handling and the print-out are left out.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn, optim


def get_distribution_sampler(mu, sigma):
    return lambda n: torch.Tensor(np.random.normal(mu, sigma, (1, n)))


def get_generator_input_sampler():
    return lambda m, n: torch.rand(m, n)


class Generator(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, f):
        super().__init__()
        self.map1 = nn.Linear(input_size, hidden_size)
        self.map2 = nn.Linear(hidden_size, hidden_size)
        self.map3 = nn.Linear(hidden_size, output_size)
        self.f = f

    def forward(self, x):
        x = self.f(self.map1(x))
        x = self.f(self.map2(x))
        return self.map3(x)


class Discriminator(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, f):
        super().__init__()
        self.map1 = nn.Linear(input_size, hidden_size)
        self.map2 = nn.Linear(hidden_size, hidden_size)
        self.map3 = nn.Linear(hidden_size, output_size)
        self.f = f

    def forward(self, x):
        x = self.f(self.map1(x))
        x = self.f(self.map2(x))
        return self.f(self.map3(x))


def get_moments(d):
    mean = torch.mean(d)
    diffs = d - mean
    var = torch.mean(torch.pow(diffs, 2.0))
    std = torch.pow(var, 0.5)
    zscores = diffs / std
    skews = torch.mean(torch.pow(zscores, 3.0))
    kurtoses = torch.mean(torch.pow(zscores, 4.0)) - 3.0
    return torch.cat((mean.reshape(1,), std.reshape(1,), skews.reshape(1,), kurtoses.reshape(1,)))


class DevnagLoop:
    """The seed's state (G, D, optimizers, samplers); run(epochs) trains like its train()."""

    def __init__(self, seed=0, compiled=False):
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.d_sampler = get_distribution_sampler(4.0, 1.25)
        self.gi_sampler = get_generator_input_sampler()
        self.G = Generator(1, 5, 1, torch.tanh)
        self.D = Discriminator(4, 10, 1, torch.sigmoid)
        self.moments = get_moments
        if compiled:  # what a user would try first: compile the modules and the feature function
            self.G, self.D = torch.compile(self.G), torch.compile(self.D)
            self.moments = torch.compile(get_moments)
        self.criterion = nn.BCELoss()
        self.d_optimizer = optim.SGD(self.D.parameters(), lr=1e-3, momentum=0.9)
        self.g_optimizer = optim.SGD(self.G.parameters(), lr=1e-3, momentum=0.9)

    def run(self, epochs, minibatch_size=500, d_steps=20, g_steps=20):
        G, D, criterion = self.G, self.D, self.criterion
        for _ in range(epochs):
            for _ in range(d_steps):
                D.zero_grad()
                d_real_data = self.d_sampler(500)
                d_real_decision = D(self.moments(d_real_data))
                d_real_error = criterion(d_real_decision, torch.ones([1]))
                d_real_error.backward()
                d_gen_input = self.gi_sampler(minibatch_size, 1)
                d_fake_data = G(d_gen_input).detach()
                d_fake_decision = D(self.moments(d_fake_data.t()))
                d_fake_error = criterion(d_fake_decision, torch.zeros([1]))
                d_fake_error.backward()
                self.d_optimizer.step()
            for _ in range(g_steps):
                G.zero_grad()
                gen_input = self.gi_sampler(minibatch_size, 1)
                g_fake_data = G(gen_input)
                dg_fake_decision = D(self.moments(g_fake_data.t()))
                g_error = criterion(dg_fake_decision, torch.ones([1]))
                g_error.backward()
                self.g_optimizer.step()
