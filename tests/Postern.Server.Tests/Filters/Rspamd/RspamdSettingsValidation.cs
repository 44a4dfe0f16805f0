using System.Collections;
using Postern.Server.Configuration;

namespace Postern.Server.Tests.Filters.Rspamd;

/// <summary>The Rspamd section's values checked at load, each refusal naming its key (ConfigurationLoader).</summary>
public sealed class RspamdSettingsValidation
{
    private static PosternOptions Load(params (string Name, string Value)[] environment)
    {
        var env = new Hashtable();
        foreach (var (name, value) in environment)
        {
            env[name] = value;
        }
        return ConfigurationLoader.Load(RepositoryFiles.WriteConfig(RepositoryFiles.ValidConfig), dev: false, env);
    }

    [Fact]
    public void ByDefaultRspamdIsOffAndFailsClosed()
    {
        var o = Load().Rspamd;
        Assert.Equal("", o.Url);
        Assert.False(o.FailOpen);
        Assert.False(o.CheckSubmission);
        Assert.Equal(TimeSpan.FromSeconds(15), o.Timeout);
        Assert.Equal(RspamdHeaders.All, o.Headers);
    }

    [Fact]
    public void AFullSectionLoads()
    {
        var o = Load(
            ("POSTERN_Rspamd__Url", "http://127.0.0.1:11333"),
            ("POSTERN_Rspamd__Timeout", "00:00:05"),
            ("POSTERN_Rspamd__FailOpen", "true"),
            ("POSTERN_Rspamd__SettingsIdSubmission", "outbound-dkim"),
            ("POSTERN_Rspamd__Headers", "score")).Rspamd;
        Assert.Equal("http://127.0.0.1:11333", o.Url);
        Assert.True(o.FailOpen);
        Assert.Equal("outbound-dkim", o.SettingsIdSubmission);
        Assert.Equal(RspamdHeaders.Score, o.Headers);
    }

    [Theory]
    [InlineData("POSTERN_Rspamd__Url", "127.0.0.1:11333", "Rspamd.Url: '127.0.0.1:11333' is not an http:// or https:// address")]
    [InlineData("POSTERN_Rspamd__Url", "unix:/run/rspamd/normal.sock", "Rspamd.Url:")]
    [InlineData("POSTERN_Rspamd__Url", "http://127.0.0.1:11333/?x=1", "Rspamd.Url:")]
    [InlineData("POSTERN_Rspamd__Timeout", "00:00:00", "Rspamd.Timeout: must be between 0 and 5 minutes")]
    [InlineData("POSTERN_Rspamd__Timeout", "00:10:00", "Rspamd.Timeout:")]
    [InlineData("POSTERN_Rspamd__MaxMessageSize", "100", "Rspamd.MaxMessageSize: must be at least 1024 octets")]
    [InlineData("POSTERN_Rspamd__SettingsIdMx", "in bound", "Rspamd.SettingsIdMx: 'in bound' is not a settings id")]
    [InlineData("POSTERN_Rspamd__SettingsIdSubmission", "a\r\nPass: all", "Rspamd.SettingsIdSubmission:")]
    [InlineData("POSTERN_Rspamd__Headers", "some", "Rspamd.Headers")]
    [InlineData("POSTERN_Rspamd__FailOpen", "maybe", "Rspamd.FailOpen")]
    public void ABadValueIsRefusedNamingTheKey(string variable, string value, string error)
    {
        var e = Assert.Throws<ConfigurationException>(() => Load((variable, value)));
        Assert.Contains(error, e.Message, StringComparison.Ordinal);
    }
}
