using TorchSharp;
using Vlsm.IO;
using static TorchSharp.torch;

namespace Vlsm.Tests;

/// <summary>
/// The restricted reader on TorchScript archives (OpenAI's CLIP .pt format) and on checkpoints with
/// objects beside the state dict (Lightning .ckpt): the tensors come out as libtorch's own
/// <c>torch.jit.load(...).state_dict()</c> has them, and other globals stay refused where a plain
/// state dict is expected.
/// </summary>
public sealed class TorchScriptReaderTests : IDisposable
{
    private readonly string tmp = Directory.CreateTempSubdirectory("vlsm-torchscript-").FullName;

    public void Dispose() => Directory.Delete(tmp, recursive: true);

    private static TorchTensor Half(string name, long[] shape, int seed)
    {
        var rng = new Random(seed);
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var data = new byte[2 * n];
        for (int i = 0; i < n; i++) BitConverter.TryWriteBytes(data.AsSpan(2 * i), (Half)(rng.NextDouble() * 4 - 2));
        return new TorchTensor(name, SafetensorsDtype.F16, shape, data);
    }

    private static TorchTensor Long(string name, long value) => new(name, SafetensorsDtype.I64, [], BitConverter.GetBytes(value));

    /// <summary>A module tree with nested and numbered submodules, fp16 parameters, 0-dim tensors and int64 buffers.</summary>
    private static List<TorchTensor> SmallModule() =>
    [
        Half("positional_embedding", [5, 4], 1),
        Half("visual.conv1.weight", [4, 3, 2, 2], 2),
        Half("visual.transformer.resblocks.0.attn.in_proj_weight", [12, 4], 3),
        Half("visual.transformer.resblocks.0.attn.out_proj.weight", [4, 4], 4),
        Half("visual.transformer.resblocks.1.mlp.c_fc.bias", [8], 5),
        Half("logit_scale", [], 6),
        Long("input_resolution", 224),
        Long("vocab_size", 49408),
    ];

    [Fact]
    public void ATorchScriptArchiveGivesTheStateDictLibtorchLoads()
    {
        var tensors = SmallModule();
        string hand = Path.Combine(tmp, "hand.pt"), resaved = Path.Combine(tmp, "resaved.pt");
        var tree = ScriptModuleNode.FromStateDict(tensors, n => n is "input_resolution" or "vocab_size");
        // A tensor attribute that is neither parameter nor buffer (as a scripted block's attn_mask would be): not in the state dict.
        var block = (ScriptModuleNode)((ScriptModuleNode)((ScriptModuleNode)((ScriptModuleNode)tree.Attributes.Single(a => a.Name == "visual").Value)
            .Attributes.Single(a => a.Name == "transformer").Value).Attributes.Single(a => a.Name == "resblocks").Value).Attributes.Single(a => a.Name == "0").Value;
        block.Attributes.Add(("attn_mask", Half("attn_mask", [3, 3], 10)));
        block.Plain.Add("attn_mask");
        TorchScriptArchive.Write(hand, tree, location: "cuda:0");

        // libtorch itself loads the archive (storages saved on a GPU mapped to the CPU) and writes it again with its own pickler.
        Dictionary<string, Tensor> expected;
        using (var module = torch.jit.load(hand, DeviceType.CPU))
        {
            expected = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            torch.jit.save(module, resaved);
        }
        Assert.Equal(tensors.Select(t => t.Name).Order(), expected.Keys.Order());

        foreach (var file in new[] { hand, resaved })
        {
            var read = TorchCheckpoint.ReadTorchScript(file);
            Assert.Equal(expected.Keys.Order(), read.Select(t => t.Name).Order());
            foreach (var t in read)
            {
                using var ours = t.ToTensor();
                Assert.True(Bitwise.Equal(expected[t.Name], ours), $"{Path.GetFileName(file)}: {t.Name}");
            }
            if (file == hand) Assert.Equal(tensors.Select(t => t.Name), read.Select(t => t.Name)); // attribute order, as the module holds them
        }
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void AModuleArchiveIsNotAStateDictAndForeignGlobalsStayRefused()
    {
        string archive = Path.Combine(tmp, "module.pt");
        TorchScriptArchive.Write(archive, ScriptModuleNode.FromStateDict(SmallModule()));
        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(archive));
        Assert.Contains("__torch__.model.Module0", e.Message);

        // A module whose attribute calls posix.system: refused even where TorchScript classes are read.
        var w = new PickleWriter();
        w.Object("__torch__.model", "M", [("training", () => w.Bool(false)), ("evil", () =>
        {
            w.Global("posix", "system");
            w.String("touch /tmp/pwned");
            w.Op(0x85, (byte)'R');
        })]);
        string evil = Path.Combine(tmp, "evil.pt");
        PickleWriter.WriteZip(evil, "archive", w.Finish(), w.Storages);
        e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadTorchScript(evil));
        Assert.Contains("posix.system", e.Message);

        // A torch.save state dict is not a module.
        var s = new PickleWriter();
        s.Dict([("w", () => s.Tensor(Half("w", [2], 7)))], ordered: true);
        string stateDict = Path.Combine(tmp, "state.pth");
        PickleWriter.WriteZip(stateDict, "archive", s.Finish(), s.Storages);
        e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadTorchScript(stateDict));
        Assert.Contains("not a TorchScript module", e.Message);
    }

    /// <summary>A Lightning checkpoint as vlsm-adapter's trainer writes one: the state dict under "state_dict", hyper-parameters holding a loss object and a functools.partial.</summary>
    internal static void LightningCheckpoint(string path, IReadOnlyList<TorchTensor> stateDict)
    {
        var w = new PickleWriter();
        w.Dict(
        [
            ("epoch", () => w.Int(12)),
            ("global_step", () => w.Int(4800)),
            ("pytorch-lightning_version", () => w.String("2.0.9")),
            ("state_dict", () => w.Dict(stateDict.Select(t => (t.Name, (Action)(() => w.Tensor(t)))), ordered: true)),
            ("hyper_parameters", () => w.Dict(
            [
                ("loss_fn", () => w.Object("monai.losses.dice", "DiceCELoss", [("training", () => w.Bool(true)), ("lambda_dice", () => w.Float(1.5))])),
                ("optimizer", () =>
                {
                    w.Global("functools", "partial");
                    w.Global("torch.optim.adamw", "AdamW");
                    w.Op(0x85, (byte)'R');
                    w.Dict([("lr", () => w.Float(3e-4))]);
                    w.Op((byte)'b');
                }),
            ])),
        ]);
        PickleWriter.WriteZip(path, "archive", w.Finish(), w.Storages);
    }

    [Fact]
    public void ALightningCheckpointsStateDictIsReadBesideItsObjectsOnlyWhenAsked()
    {
        var tensors = new[] { Half("net.a.weight", [3, 2], 8), Half("net.b", [4], 9) };
        string ckpt = Path.Combine(tmp, "run.ckpt");
        LightningCheckpoint(ckpt, tensors);

        var e = Assert.Throws<VlsmException>(() => TorchCheckpoint.ReadStateDict(ckpt));
        Assert.Contains("monai.losses.dice.DiceCELoss", e.Message);

        var read = TorchCheckpoint.ReadStateDictBesideObjects(ckpt, out var foreign);
        Assert.Equal(tensors.Select(t => t.Name), read.Select(t => t.Name));
        Assert.Equal(tensors.Select(t => t.Data), read.Select(t => t.Data));
        Assert.Equal(new[] { "functools.partial", "monai.losses.dice.DiceCELoss", "torch.optim.adamw.AdamW" }, foreign);
    }
}
